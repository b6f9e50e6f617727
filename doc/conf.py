"""Sphinx configuration for the krakenex documentation.

Build it with ``sphinx-build -W -b html doc doc/_build``. Nothing here reaches
the network: there is no intersphinx, so references to :mod:`requests` and the
standard library render as plain text.
"""

import os
import sys

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

# Document the checkout this file belongs to, installed or not.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from krakenex.frames import COLUMNS
from krakenex.methods import METHODS
from krakenex.version import __version__

project = 'krakenex'
author = 'the krakenex authors'
copyright = 'the krakenex authors; LGPL-3.0-or-later'
version = release = __version__

extensions = ['sphinx.ext.autodoc']

exclude_patterns = ['_build']

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_typehints_description_target = 'documented'
autodoc_preserve_defaults = True

html_theme = 'alabaster'
html_theme_options = {
    'description': 'A Kraken client you can read in ten minutes and trust with money.',
    'fixed_sidebar': True,
}
html_static_path: list[str] = []


def methods_table(changing_state_only: bool) -> list[str]:
    """krakenex.methods' table as the lines of an RST list-table."""
    if changing_state_only:
        lines = ['.. list-table::', '   :header-rows: 1', '   :widths: auto', '',
                 '   * - Method', '     - What it does']
        for m in METHODS.values():
            if m.changes_state:
                lines += [f'   * - ``{m.name}``', f'     - {m.summary}']
        return lines
    lines = ['.. list-table::', '   :header-rows: 1', '   :widths: auto', '',
             '   * - Method', '     - Access', '     - Changes state', '     - Cost',
             '     - Parameters (``*`` required)', '     - What it does']
    for m in METHODS.values():
        params = ' '.join(f'``{p}``' for p in m.params.split()) or '–'
        lines += [f'   * - ``{m.name}``',
                  f'     - {"private" if m.private else "public"}',
                  f'     - {"yes" if m.changes_state else "no"}',
                  f'     - {m.cost if m.private else "–"}',
                  f'     - {params}',
                  f'     - {m.summary}']
    return lines


class KrakenMethods(SphinxDirective):
    """``.. kraken-methods::`` renders krakenex.methods' table, so the docs never drift from it.

    With the ``:changing-state:`` flag it lists only the methods krakenex never re-sends.
    """

    option_spec = {'changing-state': directives.flag}

    def run(self) -> list[nodes.Node]:
        lines = methods_table('changing-state' in self.options)
        holder = nodes.container()
        self.state.nested_parse(StringList(lines, source='krakenex.methods'),
                                self.content_offset, holder)
        return list(holder.children)


#: How each kind of krakenex.frames column shows in the docs.
FRAME_DTYPES = {
    'number': '``float64`` (``Decimal`` with ``exact=True``)',
    'integer': '``int64`` (``Int64`` where one is missing)',
    'time': '``datetime64[ns, UTC]``',
    'text': 'text (``object`` on pandas 2, ``str`` on pandas 3)',
    'flag': '``bool``',
    'other': 'as Kraken sent it (lists)',
}


class FrameColumns(SphinxDirective):
    """``.. frame-columns::`` renders krakenex.frames.COLUMNS: each function's index and columns."""

    def run(self) -> list[nodes.Node]:
        lines = ['.. list-table::', '   :header-rows: 1', '   :widths: auto', '',
                 '   * - Function', '     - Index', '     - Columns and dtypes']
        for name, ((index, _), *columns) in COLUMNS.items():
            listed = '; '.join(
                ', '.join(f'``{c}``' for c, k in columns if k == kind) + ': ' + shown
                for kind, shown in FRAME_DTYPES.items() if any(k == kind for _, k in columns))
            lines += [f'   * - :func:`~krakenex.frames.{name}`', f'     - ``{index}``',
                      f'     - {listed}']
        holder = nodes.container()
        self.state.nested_parse(StringList(lines, source='krakenex.frames'),
                                self.content_offset, holder)
        return list(holder.children)


def setup(app: Sphinx) -> dict[str, bool]:
    app.add_directive('kraken-methods', KrakenMethods)
    app.add_directive('frame-columns', FrameColumns)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
