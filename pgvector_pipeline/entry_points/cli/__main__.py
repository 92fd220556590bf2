"""`python -m pgvector_pipeline.entry_points.cli`: the pgvector-pipeline command."""

import sys

from pgvector_pipeline.entry_points.cli.commands import main

sys.exit(main())
