"""Test support: the scaffolding that tests/ and bench/ share, kept out of the product packages.

Why a package of its own: helpers such as a throwaway PostgreSQL cluster, raters voting in many
processes, a Pillow-made study package, a Streamlit server driven by Chromium, or a function that
reveals which method is on which side of a blinded pair are needed by tests *and* benchmarks, but
must never ship inside the product (the rater app must never be able to unblind a trial). So they
live here, importable by ``tests/`` and ``bench/`` (and ``scripts/``), and the rule is one-way:
``testing`` may import ``survey`` (and the other product packages); ``models``, ``cams``, ``survey``
and ``analysis`` never import ``testing``.

Modules:

* :mod:`testing.packages`: a small valid study package made with Pillow (``make_package``), and that
  package imported into a database (``make_study``);
* :mod:`testing.reveal`: which method is on which side of a trial, and how many votes a study has;
* :mod:`testing.postgres`: a throwaway PostgreSQL cluster on 127.0.0.1;
* :mod:`testing.concurrent_raters`: many raters voting at once, one process each;
* :mod:`testing.browser`: ``streamlit run survey/app.py`` on a free port, driven by Chromium (Playwright);
* :mod:`testing.browser_load`: many impatient or patient raters at once in one Chromium;
* :mod:`testing.ports`: a free TCP port on 127.0.0.1;
* :mod:`testing.benchmark`: what every ``bench/*.py`` shares (machine header, ``--smoke``, exit 77);
* :mod:`testing.simulated_votes`: synthetic vote tables in the votes format, with known effects;
* :mod:`testing.distinction_votes`: simulated distinction answers (issue 14) with known truth;
* :mod:`testing.distinction_package`: a small valid distinction package (and study) made with Pillow;
* :mod:`testing.distinction_load`: many raters answering a distinction study at once, one process each.
"""
