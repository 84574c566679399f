"""What a person sees: the wizard (the only questionary importer), rendering as text, tables and JSON, and
progress on a terminal."""
