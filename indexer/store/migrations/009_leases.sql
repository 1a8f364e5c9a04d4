-- 009: leases for work only one process may do at a time (the chain tail of each network, the
-- webhook dispatcher, the expirer, ...), for several processes sharing one database. `token`
-- grows by one at every change of holder: the fencing token a holder's writes are checked
-- against, in the same transaction, so a holder that lost the lease can never commit again.
CREATE TABLE leases (
    name        VARCHAR PRIMARY KEY,
    holder      VARCHAR NOT NULL,
    token       BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
