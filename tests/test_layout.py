"""The repository keeps its promised shape (issue 13's rules, checked on every commit):
- every stage of the pipeline has its file, and every file the README names exists;
- no import cycle among the project's own modules (the model knows no loop; dedup knows no prepare);
- no file over ~500 lines but the attention kernel (a file is read in one sitting);
- one write_atomic: atomic writes have a single home, common.py;
- every module's docstring says what it holds;
- generated data stays out of git, torch is pinned exactly."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG_FILE_LINES = 520  # "about 500": a file a reader takes in one sitting


def project_modules():
    """{module name: path} for the top-level .py files and kernels/ (tests, config and the venv aside)."""
    paths = [*ROOT.glob("*.py"), *(ROOT / "kernels").glob("*.py")]
    return {str(p.relative_to(ROOT).with_suffix("")).replace("/", "."): p for p in paths}


def imports_of(path, modules):
    """The project modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {name for name in names if name in modules}
    return found


def find_cycle(graph):
    """A list of modules forming an import cycle, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_file_over_the_line_limit():
    too_long = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in project_modules().values()
                if len(p.read_text().splitlines()) > LONG_FILE_LINES}
    assert not too_long, too_long


def test_atomic_writes_have_one_home():
    homes = [p.name for p in project_modules().values() if re.search(r"^def write_atomic\(", p.read_text(), re.M)]
    assert homes == ["common.py"], homes


def test_every_module_says_what_it_holds():
    for name, path in project_modules().items():
        if name != "kernels.__init__":
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name}: no module docstring"


def test_every_file_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"(?<![\w/.-])((?:kernels/|config/|docs/|tests/)?[\w-]+\.(?:py|md))\b", readme))
    generated = {"report.md", "meta.json"}  # what the scripts write, named in the README as outputs
    missing = sorted(n for n in named if not (ROOT / n).exists() and n not in generated)
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_every_stage_has_its_file():
    for name in ["prepare.py", "clean.py", "dedup.py", "tokenizer.py", "model.py", "plan.py", "train.py",
                 "checkpoint.py", "monitor.py", "parallel.py", "sample.py", "eval.py", "export_hf.py", "runs.py",
                 "incidents.py", "sweeps.py", "common.py", "kernels/attention.py", "kernels/rmsnorm.py",
                 "README.md", "requirements.txt", "Makefile", ".ci/run"]:
        assert (ROOT / name).is_file(), f"missing {name}"


def test_generated_folders_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for folder in ["/data/", "/out/", "/.venv/"]:
        assert folder in ignored


def test_torch_is_pinned_exactly():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in lines
