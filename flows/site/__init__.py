"""The static site of a lake (``wwhub report``, ``wwhub demo``, the nightly's ``LAKE/reports/``): docs/report.md.

- ``build.py``   ``build_site(lake, out)``: index.html, families/*.html, models/*.html, assets/, data/
- ``reuse.py``   which model pages of the previous build a build keeps: a key per page over everything it shows
- ``data.py``    what the pages read, through queries/site_*.sql and the leaderboard (per-layer rows by slices)
- ``pages.py``   what each page shows, rendered by the Jinja templates in ``templates/`` (autoescaped)
- ``charts.py``  inline SVG charts (depth, ESD, trends with OLS bands, over time)
- ``assets/``    site.css and site.js (sortable tables, the leaderboard's filters), copied beside the pages
"""

from .build import NothingToReport, SiteSummary, build_site

__all__ = ["NothingToReport", "SiteSummary", "build_site"]
