"""Policy: rules that turn a verified identity into a grant, guardrails on parsed SQL, masking."""
