"""Run the example notebooks and save their charts for the docs.

    python doc/charts.py            # writes doc/_static/charts/NAME.png

A code cell tagged ``chart:NAME`` draws one figure; it is saved as NAME.png.
The notebooks run against the sandbox: no network, no key. The tests use
:func:`execute` and :func:`charts` to run the same notebooks.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / 'examples' / 'notebooks'
CHARTS = ROOT / 'doc' / '_static' / 'charts'


def execute(path: Path, timeout: float = 120) -> Any:
    """Run every cell of the notebook at ``path`` in a fresh kernel; a failing cell raises."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault('JUPYTER_PLATFORM_DIRS', '1')  # Jupyter's own paths, without a warning
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name='python3',
                            resources={'metadata': {'path': str(path.parent)}})
    client.execute()
    return notebook


def charts(notebook: Any) -> dict[str, list[bytes]]:
    """The PNG images each ``chart:NAME`` cell of an executed notebook drew, by NAME."""
    found: dict[str, list[bytes]] = {}
    for cell in notebook.cells:
        for tag in cell.metadata.get('tags', []):
            if tag.startswith('chart:'):
                found[tag.removeprefix('chart:')] = [
                    base64.b64decode(output['data']['image/png'])
                    for output in cell.get('outputs', [])
                    if 'image/png' in output.get('data', {})]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description='Save the example notebooks\' charts.')
    parser.add_argument('--out', type=Path, default=CHARTS, help=f'default: {CHARTS}')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOKS.glob('*.ipynb')):
        for name, images in charts(execute(path)).items():
            if len(images) != 1:
                raise SystemExit(f'{path.name}: chart {name} drew {len(images)} images, not 1')
            (args.out / f'{name}.png').write_bytes(images[0])
            print(f'{args.out / name}.png ({len(images[0]) // 1024} KiB) from {path.name}')


if __name__ == '__main__':
    main()
