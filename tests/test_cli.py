"""The exit-code rule every entry point shares (basicsr.utils.cli.run_main)."""
import errno
import logging

from basicsr.utils.cli import run_main
from basicsr.utils.errors import EXIT_INTERRUPTED, EXIT_SETUP, ConfigError, Interrupted
from basicsr.utils.logger import close_handlers


def _raise(exc: BaseException):
    def work() -> int:
        raise exc
    return work


def test_errors_are_one_line_in_the_console_and_the_log_file(tmp_path, capsys):
    log = tmp_path / 'run.log'
    logging.getLogger('basicsr').addHandler(logging.FileHandler(log))
    try:
        assert run_main(_raise(ConfigError('a.b: bad value'))) == EXIT_SETUP
    finally:
        close_handlers()
    assert capsys.readouterr().err.splitlines() == ['error: a.b: bad value']
    assert log.read_text().splitlines() == ['error: a.b: bad value']
    assert not logging.getLogger('basicsr').handlers


def test_a_failed_file_operation_names_the_file(tmp_path, capsys):
    full = OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'x.pth'))
    assert run_main(_raise(full)) == EXIT_SETUP
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'x.pth'}: No space left on device"]


def test_interrupts_and_success(capsys):
    assert run_main(_raise(KeyboardInterrupt())) == EXIT_INTERRUPTED
    assert run_main(_raise(Interrupted('3 of 9 done'))) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines() == ['interrupted', 'interrupted: 3 of 9 done']
    assert run_main(lambda: 0) == 0


def test_exit_status_names_every_failed_item(capsys):
    from basicsr.utils.cli import exit_status
    assert exit_status([]) == 0 and capsys.readouterr().err == ''
    assert exit_status(['a.png', 'b.png'], 'image(s)') == 1
    assert capsys.readouterr().err == '2 image(s) failed: a.png, b.png\n'


def test_command_parses_then_runs_under_the_shared_rules(capsys):
    import argparse

    from basicsr.utils.cli import command
    from basicsr.utils.errors import ConfigError

    def parse(argv):
        p = argparse.ArgumentParser()
        p.add_argument('--n', type=int, required=True)
        return p.parse_args(argv)

    def run(args):
        if args.n < 0:
            raise ConfigError(f"--n: expected a count >= 0, got {args.n}")
        return 0

    main = command(parse, run)
    assert main(['--n', '3']) == 0
    assert main(['--n', '-1']) == 2
    assert capsys.readouterr().err.strip() == 'error: --n: expected a count >= 0, got -1'
