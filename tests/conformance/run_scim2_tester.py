"""Runs the scim2-tester conformance checks (PyPI: scim2-tester) against a live bridge.

    python run_scim2_tester.py BASE_URL TOKEN

Prints one line per check and a closing "N passed, N failed" line; exits 1 when a check
fails that is not listed in EXPECTED_FAILURES with the reason it is deliberate.
"""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# check title -> why the failure is deliberate (also listed in the README)
EXPECTED_FAILURES: dict[str, str] = {}


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    passed = failed = skipped = 0
    for r in results:
        title = r.title
        if r.status == Status.SUCCESS:
            passed += 1
            print(f"ok    {title}")
        elif r.status in (Status.SKIPPED,) or str(r.status).lower().endswith("skipped"):
            skipped += 1
            print(f"skip  {title}: {r.reason}")
        elif title in EXPECTED_FAILURES:
            skipped += 1
            print(f"known {title}: {EXPECTED_FAILURES[title]}")
        else:
            failed += 1
            print(f"FAIL  {title}: {r.reason}")
            if r.data is not None:
                print(f"      data: {str(r.data)[:600]}")
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
