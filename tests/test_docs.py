"""The examples in docs/semantics.md run and print what the page says."""
import doctest
import pathlib

DOC = pathlib.Path(__file__).parent.parent / "docs" / "semantics.md"


def test_semantics_md_examples():
    result = doctest.testfile(str(DOC), module_relative=False, encoding="utf-8",
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 50, "the page lost its examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
