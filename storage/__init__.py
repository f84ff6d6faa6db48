"""Storage: the versioned Parquet item store, the content-addressed artifact store and the
registry database. Nothing outside this package sees a file layout or an ORM row."""
