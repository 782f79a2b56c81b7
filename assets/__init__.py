"""Art and fonts (package data); see LICENSES.md beside each file."""
