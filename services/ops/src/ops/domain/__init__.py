"""Dead letters and the rule of replay; no framework in here."""
