"""Cross-check a policy against the settings: databases and roles the rules name but the settings lack.

These are warnings, not errors: a rule may name a database that is added later.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from sqlgate.config import Settings
from sqlgate.policy.compiled import is_glob
from sqlgate.policy.model import PolicyFile


def settings_warnings(policy: PolicyFile, settings: Settings) -> list[str]:
    """One sentence per database or role a rule names that the settings do not define."""
    warnings = []
    for index, rule in enumerate(policy.rules):
        where = f"rules.{index} ({rule.name})"
        for database in rule.databases:
            if is_glob(database):
                matched = [alias for alias in settings.databases if fnmatchcase(alias, database)]
                if not matched:
                    warnings.append(f"{where}: databases {database!r} matches no configured database")
                continue
            config = settings.databases.get(database)
            if config is None:
                warnings.append(f"{where}: database {database!r} is not in the settings")
            elif rule.effect == "allow" and rule.role and rule.role not in config.roles:
                warnings.append(f"{where}: role {rule.role!r} has no database role in databases.{database}.roles")
    return warnings
