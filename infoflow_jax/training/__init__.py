"""Training harness: specs, protocol, agreement report. Imports the core and the verification engine."""
