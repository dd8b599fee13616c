import subprocess
import sys

from mlpot.cli import COMMANDS, main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "mlpot", "--help"], capture_output=True, text=True, check=True)
    assert "usage: mlpot" in out.stdout
