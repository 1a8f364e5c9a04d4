"""Long-running loops inside `chainpay serve`: chain tails, the expirer, the webhook dispatcher."""
