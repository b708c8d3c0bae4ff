"""Several replicas acting as one gateway, over one PostgreSQL state database.

Each replica registers itself (``replicas`` table) and beats a heartbeat; it
mirrors its live sessions into ``replica_sessions`` so any replica can list
them, and picks up ``session_end_requests`` addressed to it, so any replica can
end a session wherever it is held. The same loop forgets leases another
replica ended, follows policy reloads other replicas announce, and marks
silent replicas gone. With SQLite state (one replica) none of this runs.
"""
