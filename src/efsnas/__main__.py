import sys

from efsnas.cli.main import main

sys.exit(main())
