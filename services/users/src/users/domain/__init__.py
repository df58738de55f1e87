"""The identity domain: rules and errors, free of frameworks."""
