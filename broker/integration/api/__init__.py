"""The retained-state API (`retained/`), mounted under /api/v1/ by roost/api/urls.py."""
