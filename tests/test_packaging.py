"""A normal (non-editable) install carries the start-up hook and the YAMLs."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_startup_hook_and_hyperparams(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sb3_latent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # At the root of site-packages, where `site` runs it, and sorting after setuptools' __editable__*.pth.
    assert "sb3_latent_startup.pth" in names
    # Python >= 3.15 (PEP 829) runs the .start twin's entry point instead of the .pth import line.
    assert "sb3_latent_startup.start" in names
    shipped = {Path(name).name for name in names if name.startswith("sb3_latent/hyperparams/")}
    assert shipped == {path.name for path in (REPO / "hyperparams").glob("*.yml")}


def test_editable_install_has_startup_hook():
    site_packages = Path(next(p for p in sys.path if p.endswith("site-packages")))
    pth = site_packages / "sb3_latent_startup.pth"
    assert pth.read_text().strip() == (REPO / "sb3_latent_startup.pth").read_text().strip()
    # `site` runs .pth files in sorted order: ours must come after the one that makes the package importable.
    pth_files = sorted(path.name for path in site_packages.glob("*.pth"))
    editable = [name for name in pth_files if name.startswith("__editable__") and "sb3_latent" in name]
    assert editable and pth_files.index(editable[0]) < pth_files.index(pth.name)
