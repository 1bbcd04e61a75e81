import sys

from checkpoint_sql.admin import main

sys.exit(main())
