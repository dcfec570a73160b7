import sys

from chaos.report import main

sys.exit(main())
