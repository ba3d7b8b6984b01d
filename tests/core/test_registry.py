"""`deferred`: the registry's lazy function reference (importing a system stays cheap)."""

import sys

from tenfold.core.registry import deferred


def test_deferred_imports_on_first_call_and_forwards(tmp_path, monkeypatch):
    (tmp_path / "tenfold_lazy_probe.py").write_text("def double(x, *, plus=0):\n    return 2 * x + plus\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tenfold_lazy_probe", raising=False)
    fn = deferred("tenfold_lazy_probe", "double")
    assert "tenfold_lazy_probe" not in sys.modules  # nothing imported when the spec is built
    assert fn(3, plus=1) == 7  # 2 * 3 + 1, positional and keyword arguments forwarded
    assert "tenfold_lazy_probe" in sys.modules
    assert fn.__name__ == "tenfold_lazy_probe.double"
