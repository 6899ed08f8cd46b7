"""What the tests share: phones that sign like Twilio, apps, alerts, real servers and fakes.

Nothing here is a test or a fixture; fixtures live in tests/conftest.py.
"""
