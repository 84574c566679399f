"""The layers of docs/ARCHITECTURE.md, held against the code: every import of every module under provision/ is
read with ast (imports inside functions and under TYPE_CHECKING included), and each must go where its layer
may go. Outside libraries stay behind the one place that owns them. No appliance, no import of the modules.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "provision"

# Who may import whom, by layer. A module of ours that is in no folder is a layer of its own.
ALLOWED = {
    "errors": set(),
    "secret": set(),
    "describe": {"errors"},  # the words for any failure: below commands, so batch and cli.py share them
    "core": {"core", "errors", "secret"},
    "host": {"core", "errors", "secret"},  # the person's machine: its files, read and written, its ~/.ssh
    "fetch": {"provision", "fetch", "core", "errors", "secret"},  # the network: keys from forges and URLs
    "guest": {"guest", "core", "host", "errors", "secret"},
    # commands reads the package's version for the seeding record (commands/seed/apply.py)
    "commands": {"provision", "commands", "guest", "core", "host", "fetch", "describe", "errors", "secret"},
    "ui": {"ui", "commands", "guest", "core", "host", "fetch", "describe", "errors", "secret"},
    "cli": {"provision", "cli", "ui", "commands", "guest", "core", "host", "fetch", "describe", "errors",
            "secret"},
    "provision": set(),  # the package's face: its version only
}
# Outside libraries and the only places that may import them (a module, or a folder with its dot).
OWNERS = {
    "guestfs": ("provision.guest.",),
    "questionary": ("provision.ui.wizard",),
    "passlib": ("provision.core.credentials.",),
    "cryptography": ("provision.core.credentials.",),
    "rich": ("provision.ui.",),
    "typer": ("provision.cli",),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # what it imports, dotted (a name imported from a package counts as its submodule)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["provision", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> list[Import]:
    """Every import statement in the file, wherever it stands (module level, functions, TYPE_CHECKING)."""
    name = module_name(path, root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = name.split(".")[: -node.level if path.name != "__init__.py" else len(name.split("."))]
                base = ".".join([*package, *([base] if base else [])])
            # `from provision.core import fs` imports the module provision.core.fs
            found += [Import(name, node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts == ["provision"]:
        return "provision"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def own_target(target: str, root: Path = PACKAGE) -> str | None:
    """The module of ours an import reaches, or None for an outside one."""
    if target != "provision" and not target.startswith("provision."):
        return None
    parts = target.split(".")
    while len(parts) > 1 and not (
        root.joinpath(*parts[1:]).with_suffix(".py").is_file() or root.joinpath(*parts[1:]).is_dir()
    ):
        parts.pop()  # a name imported from a module: the module is what is reached
    return ".".join(parts)


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for imp in imports_of(path, root):
            where = f"{path.relative_to(root.parent)}:{imp.line}"
            target = own_target(imp.target, root)
            if imp.target.split(".")[0] == "tests":
                found.append(f"{where}: imports {imp.target}: the product never imports the tests")
            elif target is None:
                top = imp.target.split(".")[0]
                owners = OWNERS.get(top)
                if owners and not any(imp.module == o or (o.endswith(".") and imp.module.startswith(o))
                                      for o in owners):
                    found.append(f"{where}: imports {top}, which only {', '.join(owners)} may import")
            elif layer(target) not in ALLOWED[layer(imp.module)] and layer(target) != layer(imp.module):
                allowed = ", ".join(sorted(ALLOWED[layer(imp.module)])) or "nothing of ours"
                found.append(f"{where}: {layer(imp.module)} imports {target}; {layer(imp.module)} may import "
                             f"{allowed}")
    return found


def test_every_import_goes_where_its_layer_may_go():
    assert violations() == []


def test_the_rule_is_read_from_imports_inside_functions_too(tmp_path):
    """A lazy import in a function of core, reaching up into guest, is found (as a planted one was once)."""
    package = tmp_path / "provision"
    (package / "core").mkdir(parents=True)
    (package / "guest").mkdir()
    for folder in (package, package / "core", package / "guest"):
        (folder / "__init__.py").write_text("")
    (package / "guest" / "appliance.py").write_text("import guestfs\n")
    (package / "core" / "plan.py").write_text(
        "def build():\n    from provision.guest.appliance import Appliance\n    import questionary\n"
    )
    assert violations(package) == [
        "provision/core/plan.py:2: core imports provision.guest.appliance; core may import core, errors, secret",
        "provision/core/plan.py:3: imports questionary, which only provision.ui.wizard may import",
    ]


LONG = 400  # lines; a longer module says at its top why it is long


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_over_400_lines_says_why_at_its_top(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) <= LONG:
        return
    docstring = ast.get_docstring(ast.parse("\n".join(lines))) or ""
    assert "long" in docstring.lower(), f"{path.name}: {len(lines)} lines, and its docstring does not say why"


# qemu-img is run from one module (guest/qemuimg.py), which maps its failures once; every other module names
# the tool through qemuimg.QEMU_IMG (help texts and messages included), so the string is nowhere else: not in
# code, messages or comments (a comment naming it is where a second runner tends to start).
QEMU_IMG_OWNER = Path("guest") / "qemuimg.py"


def qemu_img_mentions(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root) == QEMU_IMG_OWNER:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "qemu-img" in line.lower():
                found.append(f"{path.relative_to(root.parent)}:{number}")
    return found


def test_qemu_img_is_named_in_its_one_runner_only():
    assert qemu_img_mentions() == []


def test_the_qemu_img_rule_finds_a_second_runner(tmp_path):
    """A planted module that runs the tool itself, and one that names it in a message, are both found; the
    owner is not."""
    package = tmp_path / "provision"
    (package / "guest").mkdir(parents=True)
    (package / "commands").mkdir()
    (package / "guest" / "qemuimg.py").write_text('QEMU_IMG = "qemu-img"\n')
    (package / "commands" / "copy.py").write_text('import subprocess\n\nsubprocess.run(["qemu-img", "info"])\n')
    (package / "guest" / "say.py").write_text('MESSAGE = "Qemu-Img is not installed"\n')
    assert qemu_img_mentions(package) == ["provision/commands/copy.py:3", "provision/guest/say.py:1"]


# -- one place that prints: ui/ (and cli.py, typer's face); everything else tells through a callback ui supplies

PRINTERS = ("provision.ui.", "provision.cli")
_STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}


def prints_of(path: Path, root: Path = PACKAGE) -> list[str]:
    """Every call that writes to the terminal: print(), sys.stderr/stdout.write, traceback.print_*."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        what = None
        if isinstance(func, ast.Name) and func.id == "print":
            what = "print("
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and \
                func.value.attr in _STREAMS and func.attr in ("write", "writelines"):
            what = f"{func.value.attr}.{func.attr}("
        elif isinstance(func, ast.Attribute) and func.attr.startswith("print_") and \
                isinstance(func.value, ast.Name) and func.value.id == "traceback":
            what = f"traceback.{func.attr}("
        if what:
            found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {what}")
    return found


def printing_outside_ui(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        if not any(name == p or (p.endswith(".") and name.startswith(p)) for p in PRINTERS):
            found += prints_of(path, root)
    return found


def test_only_ui_and_cli_print():
    """docs/ARCHITECTURE.md: commands never render; guest and commands tell through a `notice` or a progress."""
    assert printing_outside_ui() == []


def test_a_print_outside_ui_is_found(tmp_path):
    package = tmp_path / "provision"
    for folder in ("guest", "commands", "ui"):
        (package / folder).mkdir(parents=True)
    (package / "guest" / "session.py").write_text(
        "import sys, traceback\n\ndef close():\n    print('stopping', file=sys.stderr)\n"
        "    sys.stderr.write('x')\n    traceback.print_exception(ValueError())\n"
    )
    (package / "commands" / "seed.py").write_text("def on_sigint():\n    print('Ctrl-C')\n")
    (package / "ui" / "render.py").write_text("def show():\n    print('fine here')\n")
    (package / "cli.py").write_text("import sys\nsys.stdout.write('fine here')\n")
    assert printing_outside_ui(package) == [
        "provision/commands/seed.py:2: print(",
        "provision/guest/session.py:4: print(",
        "provision/guest/session.py:5: stderr.write(",
        "provision/guest/session.py:6: traceback.print_exception(",
    ]
