"""The flag table is the one place a flag is declared: every row reaches the magic's help,
``build_spec``, the way back to a magic line, and the README.

Each row needs a sample here: a row added without one fails ``test_every_flag_has_a_sample``,
and with one it is checked by every test below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from IPython.core.magic_arguments import parse_argstring

from nbserve._errors import SpecError
from nbserve._flags import FLAGS, SPEC_FLAGS, build_spec, flag_values, magic_line, spec_flags
from nbserve._magics import ServeMagics

README = Path(__file__).resolve().parents[2] / "README.md"

# A value other than the default for every flag, with the flags it needs beside it.
SAMPLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "name": ("embed_v2", {}),
    "backend": ("modal", {"gpu": "T4"}),
    "handler": ("predict", {}),
    "max_batch_size": (16, {}),
    "batch_wait_ms": (2.5, {}),
    "no_batch": (True, {}),
    "gpu": ("0.25", {}),
    "cpus": (0.5, {}),
    "memory": ("4GiB", {}),
    "replicas": ("1:4", {}),
    "target_ongoing": (8.0, {"replicas": "1:4"}),
    "scaledown_window": (60, {"replicas": "0:2"}),
    "route": ("/v1/embed", {}),
    "address": ("ray://head:10001", {}),
    "pip": (["numpy", "scipy==1.*"], {}),
    "env": (["A=1", "B=x=y"], {}),
    "uses": ("rank,search", {}),
    "public": (True, {}),
    "timeout": (30.0, {}),
    "max_queued": (8, {}),
    "no_retry": (True, {}),
    "setup_timeout": (90.0, {}),
    "openai": ("chat", {}),
    "restart": (True, {}),
}


def sample_spec(dest: str) -> Any:
    value, needs = SAMPLES[dest]
    flags = {"name": "embed", **needs, dest: value}
    return build_spec(**flags)


def test_every_flag_has_a_sample() -> None:
    assert set(SAMPLES) == {flag.dest for flag in FLAGS}


@pytest.mark.parametrize("flag", FLAGS, ids=lambda f: f.name)
def test_every_flag_is_in_the_magics_help(flag: Any) -> None:
    help_text = ServeMagics.serve.__doc__ or ""
    assert (flag.dest if flag.kind == "positional" else flag.name) in help_text
    assert flag.help.split("(")[0].strip()[:40] in " ".join(help_text.split())


@pytest.mark.parametrize("flag", SPEC_FLAGS, ids=lambda f: f.name)
def test_every_flag_builds_a_spec_that_returns_to_its_flags_and_line(flag: Any) -> None:
    spec = sample_spec(flag.dest)
    assert flag.dest in spec_flags(spec), f"{flag.name} is lost on the way back to flags"
    assert build_spec(**spec_flags(spec)) == spec
    line = magic_line(spec)
    if flag.kind != "positional":
        assert flag.name in line.split()
    # The line parses back, through the magic's own parser, into the same spec.
    parsed = flag_values(vars(parse_argstring(ServeMagics.serve, line.removeprefix("%%serve "))))
    parsed.pop("restart")
    assert build_spec(**parsed) == spec


def test_the_deploy_options_reach_the_magic_but_not_the_spec() -> None:
    parsed = flag_values(vars(parse_argstring(ServeMagics.serve, "embed --restart")))
    assert parsed["restart"] is True
    with pytest.raises(SpecError, match="--restart True: nbserve has no such flag"):
        build_spec(**{k: v for k, v in parsed.items() if v is not None and v is not False})


def test_an_unknown_keyword_is_a_spec_error_naming_the_flags() -> None:
    with pytest.raises(SpecError, match="--max-batch 4: nbserve has no such flag") as raised:
        build_spec(name="embed", max_batch=4)
    assert "--max-batch-size" in str(raised.value)


def test_repeated_list_flags_add_up() -> None:
    parsed = flag_values(vars(parse_argstring(ServeMagics.serve, "embed --env A=1 B=2 --env C=3 --pip x")))
    assert parsed["env"] == ["A=1", "B=2", "C=3"]
    assert parsed["pip"] == ["x"]


def readme_flags() -> set[str]:
    text = README.read_text()
    table = text[text.index("### Flags") :]
    table = table[: table.index("\n\n", table.index("| flag |"))]
    return set(re.findall(r"`(--[a-z-]+|NAME)", table))


def test_the_readme_lists_exactly_the_flags_of_the_table() -> None:
    assert readme_flags() == {flag.name for flag in FLAGS}


def test_openai_names_one_of_its_apis() -> None:
    assert build_spec(name="embed", openai="embeddings").openai == "embeddings"
    with pytest.raises(SpecError, match="must be one of embeddings, chat, completions") as caught:
        build_spec(name="embed", openai="vision")
    assert "--openai chat" in str(caught.value)
