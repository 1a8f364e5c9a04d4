"""The pure domain core: money, networks and assets, invoices, payments, events. No I/O."""
