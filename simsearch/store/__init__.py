"""One index directory on disk: manifest, reader, writer (atomic generations), SQLite, the FAISS file, index types, updates, verify."""
