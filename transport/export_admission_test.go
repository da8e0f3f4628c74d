package transport

import "github.com/libp2p/go-libp2p/core/peer"

// BudgetKey exposes budgetKey to the external tests.
func BudgetKey(h *Host, p peer.ID) string { return h.budgetKey(p) }
