import subprocess
import sys


def test_import_workbench_is_light():
    code = (
        "import sys, workbench, workbench.config, workbench.data.schema, workbench.security.roles;"
        "heavy = [m for m in ('torch', 'dagster', 'presidio_analyzer', 'spacy', 'lancedb', 'transformers') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
