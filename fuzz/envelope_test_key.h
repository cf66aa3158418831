/* SPDX-License-Identifier: Apache-2.0 */
/* A throw-away RSA-2048 key, NOT A SECRET: the fuzz seeds in corpus/envelope/ are sealed to it so the
 * fuzzer reaches the decryption paths. Made with `openssl genpkey -algorithm RSA
 * -pkeyopt rsa_keygen_bits:2048`; fuzz/make-seeds.py seals the seeds to it. */
#ifndef ET_FUZZ_ENVELOPE_TEST_KEY_H
#define ET_FUZZ_ENVELOPE_TEST_KEY_H
static const char et_fuzz_test_key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCowT3XJgBpu9Gm\n"
	"sPiAMKFFqEGJw3fWJ+6vwBxroty+m3IhesLUdmH90OQEIHgurPDbu2/V1FuITOLF\n"
	"yzWI4xsocqCNUEsHa0aZdxw1upm3MdhyixiaLlHLSvu8UjqT8Q9C0oKw7mw5eapd\n"
	"f0Z4dkCYfI7E84LybiAJf1lmSqIS2V6KeChYv88WVVcLH10Yu8dhEQJTNkb6FF6Q\n"
	"AEtAC5N2llfGB+krysYXwWAnwMiku06o/A8OtvVVYA1OfVqDes6pKRJj5lAY3VWs\n"
	"lsLmd3d0mYDd9t2d3IGMz/hvv3j17S0oYwJFKz6ymo00yrzDXTzQAtPWd4bXecrB\n"
	"8p86DJt/AgMBAAECgf8lyrv6zqLnsMUACF1dhsPF/zXOm0yBW79T4SABp/PLKBMg\n"
	"2HSadpzR3sHB24OmF/fuT488ER5RrjkwgkxDA0ZGAIYi9D8WiOatZZwnLuHnP99J\n"
	"f3uqprh/WU1SqwkrLhrrsppt/gHWDCZzZOBaQYKeYq8xdwf3VNKz1s9qDHDMBMT/\n"
	"NN/DgDvGjPBaYtgpoJd8EITJYl7+1EaRdBsgOSCajSxfz3EC4kOWbeG4nJ+p3t6O\n"
	"3dSFuecsH8k5Jgpo+uDNvRS9vBcyrJR7LZLTMSOa/+U2OeVoRWzhkkXDu4Y8dm3P\n"
	"JLoynlkbnjyTnyEPhIE4QYXCJdc8W2xmGdTE5EkCgYEA7LAdcaxBPTZrVgqOuGpf\n"
	"CCxwGkP2GiALDW5I9RAnG7R8IJx9MyFAO2NTusdsD/Ae21o0uTG0M4WIO4/0wCQW\n"
	"4M4vf9ENakWsp5aZUnX1uTpkn5fivVPJAvcIYfxGjm+gzw5K8RbBAYklHCz4ruDG\n"
	"ZhjcnkJYaqZykKfmEbd9F0kCgYEAtoYnt/hljTZhIzyfK4Xsc0x9a7omyTPlA1JI\n"
	"X4SNhYS1O3zSAQS3ugA672N5EuuSjiKU7HtG+067K1qzw14SXHD8CX9jMVgHoOiP\n"
	"68GleABrPvtC2B9xeoI8Mb1Q4n0MbJx9oZj7KBal3tmZceL4wH4bILqa+PUe8w4N\n"
	"yj8GtIcCgYEA01A9SXKf4FXIqM3ONCmL5NE/2MNaYmK/W2NeMaUVNXAC7l6ojNCf\n"
	"9yWr6HMJMIWSFwbHUZxlpSYPxhW1TyIpZtXOpI/xKTNBfXJAOtXj51aR5caGAcBf\n"
	"E42X51uDZsGU0aeSEwLcmFFoV2pzMDawCxEhTw4uwDEQ0cOE7cZjITkCgYBd7Qlx\n"
	"bXzsvygblu2d2wwDhUAheKjO70qRe/1MUgz1wYX1t9Tlu0TEjavGVt0ONHW1eOxE\n"
	"CWhMmIZO2B0bk0RFl8rLJGeqE8/RKPwu6Pa6mxSVU31hdETUM0LAodiGxKzpE1q/\n"
	"FtdgGM+Ar198ML2raPmSzRREuvcTQo8sHWTY7wKBgQDFGOEZeRVIEZG2y7zyyNqe\n"
	"NUeigpL4ULBWg+6b/o1NudyUwWArKEt2Y7XAfxalbJMqEM6P3PXlJYYbVGeETN//\n"
	"BlrFicWX5iOle8JrqbJXOZKPRB4qE51mrdPNcJzqsimuT9Tr7fEsXpwsv1btSu6Q\n"
	"o0uHgnkxydyj2R6vcjqYMQ==\n"
	"-----END PRIVATE KEY-----\n"
;
#endif
