package cli

import (
	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/config"
)

// hsmFlags are serve's flags for a vault master key in an HSM. The PIN is
// never a flag value (it would show in the process list and the shell's
// history): it comes from a file or from OSTIARY_PKCS11_PIN.
func hsmFlags(cmd *cobra.Command, cfg *config.Config) {
	cmd.Flags().StringVar(&cfg.MasterKeyPKCS11, "master-key-pkcs11", "", "`MODULE`: the PKCS#11 library of the HSM holding the vault's master key, e.g. /usr/lib/softhsm/libsofthsm2.so (or OSTIARY_MASTER_KEY_PKCS11); with --pkcs11-token and --pkcs11-key. The data key is wrapped and unwrapped inside the HSM; the key never leaves it")
	cmd.Flags().StringVar(&cfg.PKCS11Token, "pkcs11-token", "", "`LABEL` of the HSM token (or OSTIARY_PKCS11_TOKEN)")
	cmd.Flags().StringVar(&cfg.PKCS11Key, "pkcs11-key", "", "`LABEL` of the AES-256 master key on the token, created (non-extractable) if the token has none (or OSTIARY_PKCS11_KEY)")
	cmd.Flags().StringVar(&cfg.PKCS11PINFile, "pkcs11-pin-file", "", "`FILE` (mode 0600) holding the token's user PIN (or OSTIARY_PKCS11_PIN_FILE, or the PIN itself in OSTIARY_PKCS11_PIN)")
}
