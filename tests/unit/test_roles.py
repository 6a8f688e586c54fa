import re
from pathlib import Path

from workbench.security.roles import ROLE_PERMISSIONS, Permission, Role, role_allows


def test_admin_holds_everything_and_viewer_only_reads():
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert not any(role_allows(Role.VIEWER, p) for p in Permission if p.value.endswith((":write", ":manage", ":use", ":promote")))
    assert not role_allows(Role.LABELER, Permission.EVENTS_WRITE)
    assert not role_allows(Role.RESEARCHER, Permission.AUDIT_READ)


def test_readme_matrix_matches_code():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("<!-- role-matrix -->")[1].split("<!-- /role-matrix -->")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {}
    header = [h.strip() for h in section.splitlines()[1].strip("|").split("|")][1:]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        permission = re.sub(r"`", "", cells[0])
        documented[permission] = {role for role, cell in zip(header, cells[1:]) if cell == "✓"}
    assert set(documented) == {p.value for p in Permission}
    for permission, roles in documented.items():
        assert roles == {r.value for r in Role if role_allows(r, Permission(permission))}, permission
