from checkpoint_sql.migrate import run_environment

run_environment()
