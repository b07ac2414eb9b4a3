"""Portal views, one module per page family; each calls the services, never a model's save()."""
