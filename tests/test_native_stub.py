"""The typed stub of the generated cffi module (python/exitless/_native/__init__.pyi)
against the C header it describes and the module maturin built from that header:
the same functions, with the same parameters in order and the types the stub's
docstring derives from the C types; the same constants with the same values; the
structs' fields. A change to the C ABI that the stub does not follow fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import exitless._native as native
from exitless._native import ffi, lib

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "native/ffi/include/exitless.h"
STUB = ROOT / "python/exitless/_native/__init__.pyi"

_INTEGERS = {"uint8_t", "int8_t", "uint32_t", "int32_t", "uint64_t", "int64_t", "size_t", "ExitlessStatus"}
# Pointers to these are the stub's UintNNPtr / SizePtr; to the others, <name>Ptr.
_SCALAR_POINTEES = {"uint32_t": "Uint32", "uint64_t": "Uint64", "size_t": "Size"}


class CFunction:
    def __init__(self, name: str, result: str, params: list[tuple[str, str]], doc: str) -> None:
        self.name, self.result, self.params, self.doc = name, result, params, doc


def _normal(ctype: str) -> str:
    return " ".join(ctype.replace("*", " * ").split()).replace("* *", "**")


def header_functions() -> dict[str, CFunction]:
    text = HEADER.read_text()
    found: dict[str, CFunction] = {}
    pattern = re.compile(r"/\*\*((?:(?!\*/).)*)\*/\s*([A-Za-z_][\w \t*]*?)\b(exitless_\w+)\(([^)]*)\);", re.S)
    for doc, result, name, params in pattern.findall(text):
        parsed: list[tuple[str, str]] = []
        for param in params.split(","):
            param = " ".join(param.split())
            if param in ("", "void"):
                continue
            m = re.fullmatch(r"(.*?[\s*])(\w+)", param)
            assert m, f"{name}: cannot parse parameter {param!r}"
            parsed.append((_normal(m.group(1)), m.group(2)))
        found[name] = CFunction(name, _normal(result), parsed, doc)
    return found


def header_constants() -> dict[str, int]:
    return {
        name: int(value)
        for name, value in re.findall(r"^#define (EXITLESS_\w+) (\d+)$", HEADER.read_text(), re.M)
    }


def stub_class(name: str) -> ast.ClassDef:
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"{STUB}: no class {name}")


def stub_functions() -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in stub_class("_Lib").body if isinstance(node, ast.FunctionDef)}


def stub_constants() -> dict[str, object]:
    out: dict[str, object] = {}
    for node in stub_class("_Lib").body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert isinstance(node.value, ast.Constant), f"{node.target.id}: give its value in the stub"
            out[node.target.id] = node.value.value
    return out


def python_type(ctype: str, *, result: bool = False) -> str:
    """The stub's annotation for a C type (see the stub's docstring)."""
    stars = ctype.count("*")
    pointee = ctype.replace("const ", "").replace("*", "").strip()
    if stars == 0:
        if pointee in _INTEGERS:
            return "int"
        return {"void": "None", "double": "float"}[pointee]
    if pointee == "char":
        return "CData" if result else "bytes"
    if pointee == "uint8_t":
        return "bytes | CData" if ctype.startswith("const") else "CData"
    return _SCALAR_POINTEES.get(pointee, pointee) + "Ptr" * stars


def may_be_null(function: CFunction, param: str, functions: dict[str, CFunction]) -> bool:
    """Whether the header's safety notes let ``param`` be null (directly, or through
    "As for `exitless_...`")."""
    for clause in re.split(r"[;.]\s", " ".join(function.doc.replace("*", " ").split())):
        if f"`{param}`" in clause and "null" in clause:
            return True
    refers = re.search(r"As for `(exitless_\w+)`", function.doc)
    return refers is not None and may_be_null(functions[refers.group(1)], param, functions)


def test_the_stub_is_beside_the_built_module() -> None:
    # maturin develop rewrites the generated files and leaves the tracked stub alone.
    assert (Path(native.__file__).parent / "__init__.pyi").read_text() == STUB.read_text()


def test_the_stub_declares_exactly_the_headers_functions() -> None:
    assert sorted(stub_functions()) == sorted(header_functions())


def test_the_stub_declares_exactly_the_headers_constants_with_their_values() -> None:
    assert stub_constants() == header_constants()


def test_the_built_module_has_what_the_stub_declares() -> None:
    declared = set(stub_functions()) | set(stub_constants())
    assert set(dir(lib)) == declared
    for name, value in stub_constants().items():
        assert getattr(lib, name) == value, name


@pytest.mark.parametrize("name", sorted(header_functions()))
def test_each_functions_parameters_and_types_follow_the_header(name: str) -> None:
    functions = header_functions()
    c, stub = functions[name], stub_functions()[name]
    args = stub.args
    assert args.kwonlyargs == [] and args.vararg is None and args.kwarg is None
    params = [*args.posonlyargs, *args.args]
    assert params[0].arg == "self" and args.posonlyargs[-1:] in ([params[-1]], [])
    assert [p.arg for p in params[1:]] == [n for _, n in c.params], "parameter names and order"
    for (ctype, pname), param in zip(c.params, params[1:], strict=True):
        assert param.annotation is not None
        got, want = ast.unparse(param.annotation), python_type(ctype)
        if got == f"{want} | CData" and "*" in ctype:
            assert may_be_null(c, pname, functions), f"{pname}: the header does not let it be null"
        else:
            assert got == want, f"{pname} ({ctype})"
    assert stub.returns is not None
    assert ast.unparse(stub.returns) == python_type(c.result, result=True)


def _struct_classes() -> dict[str, ast.ClassDef]:
    tree = ast.parse(STUB.read_text())
    return {
        n.name.removesuffix("Ptr"): n
        for n in tree.body
        if isinstance(n, ast.ClassDef)
        and n.name.startswith("Exitless")
        and n.name.endswith("Ptr")
        and any(isinstance(b, ast.AnnAssign) for b in n.body)
    }


def test_struct_fields_match_the_built_module() -> None:
    structs = _struct_classes()
    # (Not from ffi.list_types(): asking an opaque handle type for its fields aborts cffi.)
    defined = re.findall(r"^typedef struct \{.*?^\} (\w+);", HEADER.read_text(), re.M | re.S)
    assert sorted(structs) == sorted(defined), "one stub class per struct the header defines"
    for name, cls in structs.items():
        fields = {
            n.target.id: ast.unparse(n.annotation)
            for n in cls.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        want = {}
        for field, info in ffi.typeof(name).fields:
            kind = info.type.kind
            if kind == "primitive":
                want[field] = "float" if info.type.cname == "double" else "int"
            elif kind == "struct":  # a struct inside (ExitlessStats.io): its own stub class
                want[field] = f"{info.type.cname}Ptr"
            else:
                assert kind in ("array", "pointer"), (name, field, kind)
                want[field] = "CData"
        assert fields == want, name


def test_each_cdecl_new_takes_is_a_type_of_the_module() -> None:
    new = [n for n in stub_class("_FFI").body if isinstance(n, ast.FunctionDef) and n.name == "new"]
    assert new
    for overload in new:
        literal = overload.args.posonlyargs[1].annotation
        assert isinstance(literal, ast.Subscript)
        cdecl = ast.literal_eval(literal.slice)
        ffi.typeof(cdecl)  # raises for a type the module does not know
        assert overload.returns is not None
        if cdecl != "char[]":
            assert ast.unparse(overload.returns) == python_type(_normal(cdecl)), cdecl
