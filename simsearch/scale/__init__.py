"""Scale-out on Ray: distributed builds (Ray Data over encoder actors) and shard actors for search.

The only package of simsearch that imports ``ray`` (the ``simsearch[ray]`` extra). Ray moves
batches and results between processes in memory; everything simsearch writes stays JSON,
SQLite and FAISS files.
"""
