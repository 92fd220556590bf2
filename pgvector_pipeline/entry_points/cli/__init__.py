"""pgvector-pipeline: back up, restore, truncate, list and follow runs from a shell or cron, over GraphQL.

Prints one JSON object per result on stdout (errors in plain words on stderr, one line each, never a traceback;
with --direct or list --json also as a JSON object on stdout) and exits with a code a script can test: see
EXIT_CODES.

The command line in three parts: `parser` (the commands and their options), `commands` (what each does, through the
webserver or --direct, and `main`), `render` (what it prints), with `exit_codes`. The console script is
`pgvector_pipeline.entry_points.cli:main`; `python -m pgvector_pipeline.entry_points.cli` runs the same.
"""

from pgvector_pipeline.entry_points.cli.commands import main as main
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_CODES as EXIT_CODES
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_INVALID as EXIT_INVALID
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_OK as EXIT_OK
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_RUN_FAILED as EXIT_RUN_FAILED
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_TIMEOUT as EXIT_TIMEOUT
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_UNREACHABLE as EXIT_UNREACHABLE
from pgvector_pipeline.entry_points.cli.exit_codes import INTERNAL_ERROR as INTERNAL_ERROR
from pgvector_pipeline.entry_points.cli.parser import HOST_ENV as HOST_ENV
from pgvector_pipeline.entry_points.cli.parser import PORT_ENV as PORT_ENV
from pgvector_pipeline.entry_points.cli.parser import build_parser as build_parser
from pgvector_pipeline.entry_points.cli.parser import field_spelling as field_spelling
from pgvector_pipeline.entry_points.cli.render import automation_table as automation_table
from pgvector_pipeline.entry_points.cli.render import set_table as set_table
from pgvector_pipeline.entry_points.cli.render import shell_words as shell_words
