"""The pull queue and remote exchanges: tasks for authorities, push calls, expiry."""
