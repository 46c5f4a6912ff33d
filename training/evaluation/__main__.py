import sys

from training.evaluation.evaluate import main

sys.exit(main())
