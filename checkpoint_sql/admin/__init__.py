"""What the ``checkpoint-sql`` command reads and shows: thread listings, lineage,
decoded checkpoints, statistics and health checks. Each module holds the queries
(operations run through `Database`) and the data they yield, with a JSON form for
``--json`` and a rich renderable for people."""
