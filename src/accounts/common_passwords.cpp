// The common passwords new passwords may not be: the most frequent entries of public
// breach corpora (RockYou, the NCSC/Have I Been Pwned top lists, yearly "worst password"
// lists), lower-case. Passwords shorter than 8 characters are refused by length anyway;
// a few are kept so the list also stands on its own.
#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "accounts/passwords.hpp"

namespace chatd::accounts {

namespace {

// Sorted, for a binary search.
// clang-format off
constexpr std::array<std::string_view, 480> kCommonPasswords = {
  "!qaz1qaz", "!qaz2wsx", "000000", "00000000", "0000000000", "0987654321", "10203040", "111111",
  "11111111", "1111111111", "11112222", "1111aaaa", "11223344", "112233445566", "121212",
  "12121212", "123123", "123123123", "123123123123", "123321123", "12341234", "12344321", "12345",
  "1234554321", "123456", "1234567", "12345678", "123456780", "123456789", "1234567890",
  "1234567899", "123456789a", "12345678a", "12345679", "1234567a", "123456a", "123456aa",
  "123456qwerty", "12345qwert", "1234abcd", "1234asdf", "1234qwer", "123654789", "123abc123",
  "123qwe", "123qweasd", "123qweasdzxc", "147258369", "147852369", "159753456", "1a2b3c4d",
  "1q2w3e4r", "1q2w3e4r5t", "1q2w3e4r5t6y", "1qaz2wsx", "1qazxsw2", "22222222", "2wsx3edc",
  "33333333", "3edc4rfv", "44444444", "456456456", "55555555", "5555555555", "654321", "666666",
  "66666666", "696969", "741852963", "77777777", "7777777a", "789456123", "789789789", "87654321",
  "88888888", "987654321", "9876543210", "99999999", "a12345678", "a123456789", "a1b2c3d4",
  "aa112233", "aa123456", "aaaa1111", "aaaaaa11", "aaaaaaaa", "aaaaaaaaa", "ab123456", "abc123",
  "abc12345", "abc123456", "abc123abc", "abcabcabc", "abcd1234", "abcdef123", "abcdefgh",
  "access14", "admin", "admin123", "admin1234", "admin12345", "admin@123", "adminadmin",
  "administrator", "alexander", "amanda12", "america1", "andrew123", "angel123", "angel1234",
  "angelina", "anthony1", "apple123", "apple1234", "arsenal1", "asd123456", "asdasdasd", "asdf1234",
  "asdfasdf", "asdfghjk", "asdfghjkl", "ashley123", "asshole1", "australia", "autumn2023",
  "azerty123", "azertyuiop", "babygirl1", "banana12", "bangladesh", "barbie12", "baseball",
  "baseball1", "basketball", "batman12", "batman123", "beautiful", "benjamin", "berlin12",
  "bigdaddy", "bigdick1", "biteme12", "blessed1", "blink182", "blowjob1", "boston12", "brandon1",
  "brazil123", "bubbles1", "buster123", "butterfly", "canada123", "changeme", "changeme1",
  "charles1", "charlie1", "cheese12", "chelsea1", "cherry12", "chevrolet1", "chicago1", "chocolate",
  "christmas", "christopher", "cocacola1", "computer", "computer1", "contrasena", "cookie123",
  "corvette", "cowboys1", "dallas12", "daniel123", "danielle", "darkside1", "database", "december",
  "default1", "default123", "demo1234", "diamond1", "doggy123", "dolphins", "dragon", "dragon123",
  "eagles12", "elizabeth", "england1", "f00tball", "facebook", "family123", "february", "ferrari1",
  "firewall", "flower12", "football", "football1", "football12", "forever1", "fortnite",
  "france123", "freedom1", "friday13", "fuckoff1", "fuckyou1", "fuckyou123", "gandalf1",
  "garfield1", "george12", "germany1", "ginger12", "godisgood", "golden12", "golfer12", "google123",
  "guest123", "harley12", "harrypotter", "hello123", "hello1234", "hellokitty", "helloworld",
  "hockey12", "hogwarts", "honey123", "hottie12", "hunter12", "hunter123", "hunter22", "ilovegod",
  "iloveu123", "iloveyou", "iloveyou!", "iloveyou1", "iloveyou12", "iloveyou123", "iloveyou2",
  "india123", "india@123", "internet", "internet1", "iphone12", "ironman1", "january1", "jasmine1",
  "jedimaster", "jennifer", "jessica1", "jessica123", "jesus123", "jesuschrist", "jonathan",
  "jordan123", "jordan23", "joshua123", "kawasaki", "killer12", "kitty123", "lakers24", "lemon123",
  "letmein", "letmein!", "letmein1", "letmein12", "letmein123", "letmein2", "linux123", "liverpool",
  "login", "london12", "lovelove", "lovely123", "loveme12", "lover123", "loveyou1", "manchester",
  "master", "master12", "master123", "matrix12", "matthew1", "mercedes", "metallica", "mexico123",
  "michael1", "michael123", "michelle", "mickey123", "microsoft", "minecraft", "minnie12",
  "monday123", "monkey", "monkey123", "moscow12", "motdepasse", "mustang1", "mustang123",
  "mypass123", "mypassword", "mysecret", "naruto123", "network1", "newpass1", "newpassword",
  "newyork1", "nicholas", "nicole12", "nirvana1", "nopassword", "november", "october1",
  "oldpassword", "opensesame", "orange12", "p4ssw0rd", "p4ssword", "p@ssw0rd", "p@ssword",
  "pa$$word", "pa55word", "packers1", "pakistan", "paris123", "parola123", "pass1234", "pass12345",
  "pass@123", "pass@word1", "passw0rd", "passw0rd1", "passwd123", "password", "password!",
  "password007", "password01", "password1", "password1!", "password11", "password12", "password123",
  "password2020", "password2021", "password2022", "password2023", "password2024", "password2025",
  "password99", "password@123", "passwort", "patrick1", "pepper12", "pepsi123", "philippines",
  "phoenix1", "pikachu1", "playboy1", "pokemon1", "pokemon123", "porsche911", "princess",
  "princess1", "princess12", "puppy123", "purple12", "pussy123", "q1w2e3r4", "q1w2e3r4t5",
  "q1w2e3r4t5y6", "qazwsx", "qazwsx123", "qazwsxedc", "qazwsxedc123", "qwe12345", "qweasdzxc",
  "qweqweqwe", "qwer1234", "qwerty", "qwerty!@#", "qwerty11", "qwerty12", "qwerty123", "qwerty1234",
  "qwerty12345", "qwerty123456", "qwerty7", "qwerty78", "qwertyui", "qwertyuiop", "rainbow1",
  "ranger12", "redsox12", "richard1", "robert123", "roblox123", "root1234", "rootroot", "samantha",
  "samsung1", "samsung123", "scooter1", "scotland", "secret12", "secret123", "security1",
  "senha123", "server12", "sexy1234", "shadow12", "shadow123", "silver12", "skywalker", "slipknot",
  "snoopy12", "soccer12", "solo", "sparky12", "spiderman", "spring2023", "starwars", "starwars1",
  "steelers", "stephanie", "summer12", "summer2020", "summer2021", "summer2022", "summer2023",
  "summer2024", "sunday12", "sunshine", "superman", "superman1", "superstar", "sweetheart",
  "sweetie1", "tennis12", "test1234", "test12345", "tester123", "testtest", "thepassword",
  "thomas123", "thunder1", "tigger12", "toor1234", "trinity1", "trustno1", "usa12345", "user1234",
  "vanessa1", "victoria", "welcome", "welcome1", "welcome123", "welcome2020", "welcome2021",
  "welcome2022", "welcome2023", "welcome2024", "welcome@123", "whatever", "william1", "windows1",
  "winnie12", "winter12", "winter2020", "winter2021", "winter2022", "winter2023", "yamaha123",
  "yankees1", "yellow12", "zaq12wsx", "zaq1zaq1", "zxcvbnm1", "zxcvbnm12", "zxcvbnm123", "zxcvbnma",
  "zxczxczxc",
};
// clang-format on
static_assert(std::is_sorted(kCommonPasswords.begin(), kCommonPasswords.end()));

}  // namespace

bool IsCommonPassword(std::string_view password) {
  if (password.size() > 64) return false;
  std::string lower(password);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return std::binary_search(kCommonPasswords.begin(), kCommonPasswords.end(), std::string_view(lower));
}

}  // namespace chatd::accounts
