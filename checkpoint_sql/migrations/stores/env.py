from checkpoint_sql.core.migrate import run_environment

run_environment()
