"""The documentation site's hook (docs/hooks/reference.py): the reference it generates covers the code, and the checks
that keep the examples true refuse what the code refuses. `./run test` builds the site with --strict as well."""

import importlib.util
import re
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from pgvector_pipeline.contract import RESTORE_FLAG_HELP
from pgvector_pipeline.entry_points import cli
from pgvector_pipeline.errors import ErrorType

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", REPO_ROOT / "docs" / "hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_names_every_command_and_option(hook):
    page = hook.cli_reference()
    parser = cli.build_parser()
    for name, _, sub in hook._commands(parser):
        assert f"### {name}\n" in page
        for action in sub._actions:
            for option in action.option_strings:
                assert f"`{option}`" in page or option in ("-h", "--help"), option
    for code in cli.EXIT_CODES:
        assert f"| `{code}` |" in hook.exit_codes()


def test_every_error_type_and_restore_switch_is_described(hook):
    errors = hook.error_types()
    assert all(f"| `{error_type.value}` |" in errors for error_type in ErrorType)
    switches = hook.restore_switches()
    assert all(f"`{flag}`" in switches for flag, _ in RESTORE_FLAG_HELP.values())


def test_an_example_command_the_parser_refuses_fails_the_build(hook):
    hook._check_commands("pgvector-pipeline restore --timestamp 20261124_101500 --truncate --wait", "ok.md")
    with pytest.raises(PluginError, match=r"--in-plaec"):
        hook._check_commands("pgvector-pipeline restore --timestamp 20261124_101500 --in-plaec", "bad.md")
    with pytest.raises(PluginError, match=r"required: --timestamp"):
        hook._check_commands("x=$(.venv/bin/pgvector-pipeline restore --truncate | head)", "bad.md")


def test_a_launchpad_example_its_job_refuses_fails_the_build(hook):
    ok = "ops:\n  restore_vector_backup:\n    config:\n      timestamp: '20261124_101500'\n"
    hook._check_launchpad("vector_restore_job", ok, "ok.md")
    with pytest.raises(PluginError, match=r"truncate_befor_restore"):
        hook._check_launchpad("vector_restore_job", ok + "      truncate_befor_restore: true\n", "bad.md")


def test_the_readme_is_a_front_door_with_the_two_set_up_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    set_up = readme.split("## Set up on a fresh machine", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in set_up.splitlines()] == ["./run demo", "./run test"]
    # Every link into docs/ names a page that exists (the site build checks anchors too).
    for page in re.findall(r"\]\(docs/([^)#]+)", readme):
        assert (REPO_ROOT / "docs" / page).is_file(), page
