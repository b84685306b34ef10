"""A pager for a report longer than the screen, the way git and man do it.

Only for a terminal: the caller pages when standard output is one (never when piped or
redirected). ``$PAGER`` wins (``PAGER=cat`` or an empty ``PAGER`` turns paging off); otherwise
``less``, with ``LESS=-FRX`` unless ``$LESS`` is set: quit when the text fits, keep our colours,
leave the text on the screen.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def pager_command() -> str | None:
    """The pager to run, or None for none (``$PAGER`` empty or ``cat``, or no ``less`` installed)."""
    command = os.environ.get("PAGER")
    if command is None:
        return "less" if shutil.which("less") else None
    return None if command.strip() in ("", "cat") else command


def page(text: str) -> bool:
    """Show ``text`` through the pager; False (nothing shown) when there is none or it cannot start."""
    command = pager_command()
    if command is None:
        return False
    env = dict(os.environ)
    env.setdefault("LESS", "-FRX")
    try:
        # $PAGER is the user's own setting, a command line like "less -S": run by the shell, as git does
        process = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env,  # noqa: S602
                                   encoding="utf-8", errors="replace")
    except OSError:
        return False
    assert process.stdin is not None
    try:
        process.stdin.write(text)
        process.stdin.close()
    except BrokenPipeError:  # the reader quit before the end (q)
        pass
    while True:  # Ctrl-C belongs to the pager while it runs
        try:
            process.wait()
            return process.returncode != 127  # 127: the shell found no such command
        except KeyboardInterrupt:
            continue
