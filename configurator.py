"""
configurator.py — how a run's settings are read: defaults <- config files <- --key=value, every value checked.

    python train.py config/tiny.py --max_iters=200 --dtype=float32 --resume

nanoGPT's configurator, with the checks it lacks. A config file is plain Python executed over the
current values (so a file may say `learning_rate *= 10` of the file before it); later files win; then
each --key=value is parsed with ast.literal_eval (a bare word stays a string). An unknown key (with the
closest known one suggested), a value of the wrong type, a value outside its allowed set or a count
below 1 is an error naming where it came from, before anything runs.

The defaults are not here: they are train.py's module globals, one comment each, where a reader of the
loop finds them. train.get_config passes them in.
"""
import ast
import difflib
from pathlib import Path
from types import SimpleNamespace

from common import UserError


def set_key(config, defaults, key, value, where):
    """One override, checked: the key must exist and keep its type (an int is accepted for a float)."""
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"{where}: unknown config key '{key}'{hint}")
    want = type(defaults[key])
    if want is float and type(value) is int:
        value = float(value)
    if type(value) is not want:
        raise UserError(f"{where}: {key}={value!r} is a {type(value).__name__}, expected {want.__name__}")
    config[key] = value


def apply_file(config, defaults, path):
    """Execute a config file over the current values; every plain value it leaves is an override."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such config file")
    scope = dict(config)
    exec(compile(Path(path).read_text(), path, "exec"), scope)
    for key, value in scope.items():
        if not key.startswith("_") and isinstance(value, (bool, int, float, str)):
            set_key(config, defaults, key, value, path)


def apply_flag(config, defaults, arg):
    """--key=value (or a bare --flag for a bool, meaning True)."""
    key, eq, text = arg[2:].partition("=")
    if not eq:
        if type(defaults.get(key)) is not bool:
            raise UserError(f"command line: '{arg}' should be --key=value")
        text = "True"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word such as --dataset=default
    set_key(config, defaults, key, value, "command line")


def load_config(argv, defaults, choices=(), at_least_one=()):
    """defaults <- config files (in order) <- --key=value; returns a namespace of plain values.
    choices: [(key, allowed values)]; at_least_one: keys that count something and cannot be 0."""
    config = dict(defaults)
    for arg in argv:
        if arg.startswith("--"):
            apply_flag(config, defaults, arg)
        else:
            apply_file(config, defaults, arg)
    for key, allowed in choices:
        if config[key] not in allowed:
            raise UserError(f"config: {key}={config[key]!r}, expected one of {allowed}")
    for key in at_least_one:
        if config[key] < 1:
            raise UserError(f"config: {key}={config[key]} must be at least 1")
    return SimpleNamespace(**config)
