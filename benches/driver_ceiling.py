#!/usr/bin/env python3
"""The CalDAV driver's own ceiling: ../shared/tools/caldav_baseline.py's query phase
(its Conn and run_parallel, the same REPORT bodies, keep-alive connections) against a
server that answers every request at once with a fixed body (nginx serving a canned
207 answer captured from Postern). No CalDAV server measured by the driver on this
machine can exceed this rate; benches/caldav.sh prints it beside the real figures.

Usage: driver_ceiling.py BASE_URL PATH REPORTS CONNS
Last line: ceiling query-REPORT/s=<rate>
"""
import importlib.util
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "caldav_baseline", os.path.join(here, "..", "..", "shared", "tools", "caldav_baseline.py"))
cb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cb)

base, path, total, nconns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if not base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
    raise SystemExit("refusing a non-loopback URL: " + base)
conns = [cb.Conn(base, "ceiling", "ceiling") for _ in range(nconns)]
ns = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'


def query_req(i):
    # The driver's calendar-query body (1-day time-range with calendar-data).
    d = 1 + i % 20
    s, e = f"203001{d:02d}T000000Z", f"203001{d + 1:02d}T000000Z"
    body = (f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {ns}><D:prop><D:getetag/>'
            f'<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            f'<C:comp-filter name="VEVENT"><C:time-range start="{s}" end="{e}"/></C:comp-filter>'
            f'</C:comp-filter></C:filter></C:calendar-query>')
    return ("REPORT", path, body, {"Depth": "1", "Content-Type": "application/xml"})


rate, errors, _ = cb.run_parallel("REPORT calendar-query against a canned answer", conns, total,
                                  60, query_req, {207})
print(f"ceiling query-REPORT/s={rate:.1f} errors={errors}")
