import sys

from checkpoint_sql.cli import main

sys.exit(main())
