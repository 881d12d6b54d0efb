"""The station's Qt-free service API: what the workflow and the CLI call.

Open a station with :meth:`station.service.station.Station.open`, then use
:mod:`~station.service.operators`, :mod:`~station.service.issuance`, :mod:`~station.service.requests`
and :mod:`~station.service.revocation`. Every change and its audit event commit in one transaction.
An issuance is wired by one composition root, :meth:`Station.issuance_session`
(:mod:`~station.service.session`). Nothing above this layer touches the records or SQL.
"""
