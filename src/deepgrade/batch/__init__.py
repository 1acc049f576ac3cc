"""Grading a class: many submissions at once, a gradebook that loses nothing, and the class summary.

- :mod:`.store`: finished grades kept by what they were computed from (reuse, kill-and-resume);
- :mod:`.pool`: the function that grades one submission, mapped over a Dask pool or cluster;
- :mod:`.gradebook`: an nbgrader course folder's submissions, and the one writer of its gradebook;
- :mod:`.summary`: pass rates, the score distribution and failures grouped by message (table, CSV, PNG);
- :mod:`.autograde`: ``deepgrade autograde``, the four put together.

Imports nothing heavy at the top: nbgrader's TrustedGrade reads the store from here.
"""
