import sys

from checkpoint_sql.admin.cli import main

sys.exit(main())
