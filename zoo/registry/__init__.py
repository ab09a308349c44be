"""Names of everything plugins provide: discovery through entry points, names, entries, the catalog, resolving and building."""
