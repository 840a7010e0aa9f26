"""What a campaign remembers from run to run: its history, and what changed since a baseline.

    rows          HistoryRow: one row per measured run (a workload x repetition of a point)
                  of a finished campaign run: ids, fingerprint, provenance, numbers, flags
    fingerprint   what must be equal for two runs of a point to be compared
    store         the history dataset: parquet, one file per campaign run, partitioned by
                  campaign (results root locally, the results bucket on aws), read with DuckDB
    baseline      the campaign field `baseline` (previous | a run id | median_of_last: N)
    regression    per point, this run against its baseline: the report's comparison
                  statistics (report/stats.compare) and a verdict at `regression_pct`
    trends        each point's throughput and p99 over its last runs (PNG + PDF)
    since         the report's "Since the baseline" section: writes this run, reads the
                  rest, compares, draws
    cli           `python -m cachebench history NAME [--compare RUN_A RUN_B]`

Importing this package is cheap (the campaign spec uses `baseline` at DAG parse time);
pandas, pyarrow, duckdb and scipy come with the modules that need them.
"""
