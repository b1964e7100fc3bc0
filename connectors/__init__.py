"""Sources that map external records onto events."""
