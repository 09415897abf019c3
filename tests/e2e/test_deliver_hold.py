"""Issue 13 delivery: a held receiver's rows show real attempt times and
whole errors; a route refused by the receiving gateway (401, 403, 404,
405, 421, "no route to receiver" 422) holds the receiver instead of
dead-lettering the message, and the messages arrive once the route is
fixed; bulk replay of dead rows."""

import calendar
import json
import signal
import time

import gw
from fake_receiver import FakeReceiver, closed_port, outcome
from test_delivery import (A_URA, B_URA, GP1, GP2, Poster, a_rows,
                           gateway_a, gateway_b, message, queue, settled,
                           start_a, b_messages)


def fake(pki, answer=None):
    return FakeReceiver(pki, answer=answer).start()


def rfc3339_s(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def test_show_of_probed_row_has_real_time_and_whole_error(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    try:
        start_a(a)
        t0 = time.time()
        status, hdrs, _ = Poster(a).post(message([GP1])[1])
        assert status == 202
        mid = hdrs["x-message-id"]
        # The second attempt and later ones are the held receiver's
        # probes, which claim the lane head before its own backoff ends.
        gw.wait_for(lambda: a_rows(a)[0]["attempts"] >= 3, timeout=20,
                    what="probes of the unreachable receiver")
        shown = queue(a, "show", mid, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        row = json.loads(shown.stdout)["rows"][0]
        last = rfc3339_s(row["last_attempt_at"])
        assert t0 - 2 <= last <= time.time() + 2, row
        text = queue(a, "show", mid)
        assert text.returncode == 0, text.stderr
        line = [ln for ln in text.stdout.splitlines()
                if "last attempt:" in ln][0]
        assert rfc3339_s(line.split()[-1]) == last, text.stdout
        # The last error in full, not cut to a table column.
        error = a_rows(a)[0]["last_error"]
        assert len(error) > 44, error
        assert "  last error:    " + error in text.stdout, text.stdout
    finally:
        a.stop()
